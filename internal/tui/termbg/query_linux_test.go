//go:build linux

package termbg_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

const childEnv = "TERMBG_TEST_CHILD"

// TestNoTerminalQuery runs this test binary (which links bubbletea) on a
// pseudo-terminal that never answers, and checks that nothing asked the
// terminal anything: no OSC 11 background query, no cursor position report.
// Such a query waits 5 s for an answer that never comes.
func TestNoTerminalQuery(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		return // the child: the inits have run, and that is all it is for
	}
	master, slave := openPTY(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoTerminalQuery$")
	cmd.Env = append(os.Environ(), childEnv+"=1", "TERM=xterm-256color", "COLORFGBG=")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	slave.Close()
	out, err := io.ReadAll(master)
	var pe *os.PathError
	if err != nil && !(errors.As(err, &pe) && errors.Is(pe.Err, syscall.EIO)) { // EIO: the child closed the terminal
		t.Fatalf("read the terminal: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v\n%q", err, out)
	}
	for _, query := range []string{"\x1b]11;?", "\x1b[6n"} {
		if bytes.Contains(out, []byte(query)) {
			t.Errorf("the program asked the terminal %q; it wrote:\n%q", query, out)
		}
	}
}

// openPTY opens a pseudo-terminal pair.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	fd := int(master.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlock the pseudo-terminal: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("name the pseudo-terminal: %v", err)
	}
	slave, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { slave.Close() })
	return master, slave
}
