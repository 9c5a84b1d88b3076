package editor

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// PosError is an error at a place in the editor's text.
type PosError struct {
	// Line and Col are 1-based; Col counts characters.
	Line, Col int
	Err       error
}

// Error returns "line L:C: what".
func (e *PosError) Error() string { return fmt.Sprintf("line %d:%d: %s", e.Line, e.Col, e.Err) }

// Unwrap returns the error at the place.
func (e *PosError) Unwrap() error { return e.Err }

// CheckJSON reads text as a sequence of JSON values (one or more, or none
// when it is blank) and returns each value's text and the offset where it
// starts. A syntax error comes back as a *PosError at the character that
// broke it (the end of the text for a value cut short).
func CheckJSON(text string) (values []json.RawMessage, starts []int, err error) {
	dec := json.NewDecoder(strings.NewReader(text))
	for {
		start := int(dec.InputOffset())
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return values, starts, nil
		}
		if err != nil {
			return nil, nil, Locate(text, err)
		}
		for start < len(text) && strings.ContainsRune(" \t\r\n", rune(text[start])) {
			start++
		}
		values = append(values, raw)
		starts = append(starts, start)
	}
}

// Locate turns an error of decoding text as JSON into a *PosError: a
// *json.SyntaxError or *json.UnmarshalTypeError at its offset, an
// unexpected end at the end of text. Other errors come back as they are.
func Locate(text string, err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return At(text, int(syntax.Offset)-1, err)
	case errors.As(err, &typ):
		return At(text, int(typ.Offset)-1, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return At(text, len(text), errors.New("unexpected end of JSON: a value is cut short"))
	}
	return err
}

// At returns err at byte offset off of text.
func At(text string, off int, err error) *PosError {
	off = max(min(off, len(text)), 0)
	before := text[:off]
	line := strings.Count(before, "\n") + 1
	col := len([]rune(before[strings.LastIndexByte(before, '\n')+1:])) + 1
	return &PosError{Line: line, Col: col, Err: err}
}
