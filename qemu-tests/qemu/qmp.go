package qemu

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// qmpTimeout bounds one QMP exchange; QEMU answers in milliseconds even
// under TCG, since the monitor runs outside the vCPU threads.
const qmpTimeout = 10 * time.Second

// qmp runs one QMP command on QEMU's monitor socket at path: connect, read
// the greeting, negotiate capabilities, send the command, and return the
// "return" value. Each call uses its own connection, so callers need no
// state and a dying QEMU cannot leave a half-read stream behind.
func qmp(path, command string, args any) (json.RawMessage, error) {
	deadline := time.Now().Add(qmpTimeout)
	var conn net.Conn
	var err error
	// QEMU creates the socket while it starts up; give it a moment.
	for {
		conn, err = net.DialTimeout("unix", path, time.Until(deadline))
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to QMP socket: %w", err)
	}
	defer conn.Close()
	conn.SetDeadline(deadline)

	r := bufio.NewReader(conn)
	var greeting struct {
		QMP json.RawMessage `json:"QMP"`
	}
	if err := readQMP(r, &greeting); err != nil || greeting.QMP == nil {
		return nil, fmt.Errorf("reading QMP greeting: %v", err)
	}
	if _, err := qmpExchange(conn, r, "qmp_capabilities", nil); err != nil {
		return nil, err
	}
	return qmpExchange(conn, r, command, args)
}

type qmpResponse struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
}

// qmpExchange sends one command and reads up to its response, skipping the
// asynchronous events QEMU may interleave.
func qmpExchange(conn net.Conn, r *bufio.Reader, command string, args any) (json.RawMessage, error) {
	req := map[string]any{"execute": command}
	if args != nil {
		req["arguments"] = args
	}
	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("QMP %s: encoding arguments: %w", command, err)
	}
	if _, err := conn.Write(append(b, '\n')); err != nil {
		return nil, fmt.Errorf("QMP %s: %w", command, err)
	}
	for {
		var resp qmpResponse
		if err := readQMP(r, &resp); err != nil {
			return nil, fmt.Errorf("QMP %s: reading response: %w", command, err)
		}
		switch {
		case resp.Event != "":
			continue
		case resp.Error != nil:
			return nil, fmt.Errorf("QMP %s: %s: %s", command, resp.Error.Class, resp.Error.Desc)
		case resp.Return != nil:
			return resp.Return, nil
		}
		return nil, errors.New("QMP " + command + ": response has neither return nor error")
	}
}

func readQMP(r *bufio.Reader, v any) error {
	line, err := r.ReadBytes('\n')
	if err != nil {
		return err
	}
	return json.Unmarshal(line, v)
}
