package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"sync"

	"github.com/bcctl/bcctl/internal/journal"
	"github.com/bcctl/bcctl/internal/script"
)

// callDocument is the output of `call -o json`: the forward call as a
// journal entry, every other call of the connection (reverse calls and the
// calls the --answer script made) and the expectations.
type callDocument struct {
	journal.Entry
	// Calls are the other calls, in the order they ended.
	Calls []journal.Entry `json:"calls"`
	// Expectations is the script's report (with --answer).
	Expectations *expectationsDoc `json:"expectations,omitempty"`

	mu  sync.Mutex
	all []journal.Entry
}

// expectationsDoc is a script's report in the JSON document.
type expectationsDoc struct {
	OK      bool            `json:"ok"`
	Results []expectationRe `json:"results"`
}

type expectationRe struct {
	Name  string `json:"name"`
	Pos   string `json:"pos"`
	OK    bool   `json:"ok"`
	Count int    `json:"count"`
	Text  string `json:"text"`
}

func (d *callDocument) add(e journal.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.all = append(d.all, e)
}

func (d *callDocument) setCall(e journal.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Entry = e
	d.Calls = []journal.Entry{}
	for _, o := range d.all {
		if o.ID != e.ID {
			d.Calls = append(d.Calls, o)
		}
	}
}

func (d *callDocument) setReport(r *script.Report) {
	if r == nil {
		return
	}
	doc := &expectationsDoc{OK: r.OK(), Results: []expectationRe{}}
	for _, res := range r.Results {
		doc.Results = append(doc.Results, expectationRe{
			Name: res.Expectation.Name, Pos: res.Expectation.Pos.String(), OK: res.OK, Count: res.Count, Text: res.String(),
		})
	}
	d.Expectations = doc
}

func (d *callDocument) write(w io.Writer) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return fmt.Errorf("--output json: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}

func tlsVersionName(v uint16) string {
	switch v {
	case tls.VersionTLS13:
		return "1.3"
	case tls.VersionTLS12:
		return "1.2"
	}
	return fmt.Sprintf("0x%04x", v)
}
