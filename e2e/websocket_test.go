package e2e

import (
	"bufio"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// The smallest RFC 6455 endpoint the tests need: the upstream echo server
// speaks it to prove that upgrades pass through the middleware, and the
// DevTools client speaks it to drive Chromium. Only what those two use is
// here: text, binary, continuation, ping, pong and close frames.

const (
	wsOpContinuation = 0x0
	wsOpText         = 0x1
	wsOpBinary       = 0x2
	wsOpClose        = 0x8
	wsOpPing         = 0x9
	wsOpPong         = 0xA

	// wsMaxMessage bounds a message: screenshots come back base64-encoded in
	// one DevTools message and are the largest thing the tests read.
	wsMaxMessage = 64 << 20
)

var errWSClosed = errors.New("websocket: closed by peer")

// wsConn is one websocket connection. Writes may come from several
// goroutines; reads must come from one.
type wsConn struct {
	conn   net.Conn
	br     *bufio.Reader
	client bool // a client masks the frames it sends (RFC 6455 section 5.3)

	mu sync.Mutex
}

// wsAccept is the Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
func wsAccept(key string) string {
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(sum[:])
}

// isWebSocketUpgrade reports whether r asks for a websocket.
func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket") &&
		headerHasToken(r.Header, "Connection", "upgrade")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, part := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// wsUpgrade completes a server-side handshake by hijacking the connection.
func wsUpgrade(w http.ResponseWriter, r *http.Request) (*wsConn, error) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !isWebSocketUpgrade(r) || key == "" || r.Header.Get("Sec-WebSocket-Version") != "13" {
		http.Error(w, "not a websocket handshake", http.StatusBadRequest)
		return nil, errors.New("websocket: not a handshake")
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "cannot hijack", http.StatusInternalServerError)
		return nil, errors.New("websocket: response writer cannot hijack")
	}
	conn, rw, err := hj.Hijack()
	if err != nil {
		return nil, fmt.Errorf("websocket: hijack: %w", err)
	}
	resp := "HTTP/1.1 101 Switching Protocols\r\n" +
		"Upgrade: websocket\r\n" +
		"Connection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + wsAccept(key) + "\r\n\r\n"
	if _, err := rw.WriteString(resp); err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket: write handshake: %w", err)
	}
	if err := rw.Flush(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("websocket: write handshake: %w", err)
	}
	return &wsConn{conn: conn, br: rw.Reader}, nil
}

// wsHandshake runs the client side of the handshake on an open connection
// (plain TCP or TLS) and returns the server's response when it is not 101.
func wsHandshake(conn net.Conn, host, path string, header http.Header) (*wsConn, *http.Response, error) {
	var nonce [16]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, nil, err
	}
	key := base64.StdEncoding.EncodeToString(nonce[:])
	req, err := http.NewRequest(http.MethodGet, "http://"+host+path, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Host = host
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Sec-WebSocket-Key", key)
	req.Header.Set("Sec-WebSocket-Version", "13")
	if err := req.Write(conn); err != nil {
		return nil, nil, fmt.Errorf("websocket: write handshake: %w", err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, req)
	if err != nil {
		return nil, nil, fmt.Errorf("websocket: read handshake: %w", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		return nil, resp, fmt.Errorf("websocket: handshake answered %s", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != wsAccept(key) {
		return nil, resp, fmt.Errorf("websocket: bad Sec-WebSocket-Accept %q", got)
	}
	return &wsConn{conn: conn, br: br, client: true}, resp, nil
}

// WriteMessage sends one unfragmented data frame.
func (c *wsConn) WriteMessage(op byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.writeFrame(op, payload)
}

func (c *wsConn) writeFrame(op byte, payload []byte) error {
	hdr := make([]byte, 0, 14)
	hdr = append(hdr, 0x80|op)
	var mask byte
	if c.client {
		mask = 0x80
	}
	n := len(payload)
	switch {
	case n < 126:
		hdr = append(hdr, mask|byte(n))
	case n <= 0xFFFF:
		hdr = append(hdr, mask|126, byte(n>>8), byte(n))
	default:
		hdr = append(hdr, mask|127)
		hdr = binary.BigEndian.AppendUint64(hdr, uint64(n))
	}
	data := payload
	if c.client {
		var key [4]byte
		if _, err := rand.Read(key[:]); err != nil {
			return err
		}
		hdr = append(hdr, key[:]...)
		data = make([]byte, n)
		for i := range payload {
			data[i] = payload[i] ^ key[i%4]
		}
	}
	if err := c.conn.SetWriteDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if _, err := c.conn.Write(append(hdr, data...)); err != nil {
		return fmt.Errorf("websocket: write: %w", err)
	}
	return nil
}

// ReadMessage returns the next data message, reassembling fragments and
// answering pings. It gives up at the deadline.
func (c *wsConn) ReadMessage(deadline time.Time) (byte, []byte, error) {
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return 0, nil, err
	}
	var (
		msgOp byte
		msg   []byte
	)
	for {
		fin, op, payload, err := c.readFrame()
		if err != nil {
			return 0, nil, err
		}
		switch op {
		case wsOpPing:
			c.mu.Lock()
			err := c.writeFrame(wsOpPong, payload)
			c.mu.Unlock()
			if err != nil {
				return 0, nil, err
			}
			continue
		case wsOpPong:
			continue
		case wsOpClose:
			return 0, nil, errWSClosed
		case wsOpContinuation:
			if msg == nil {
				return 0, nil, errors.New("websocket: continuation without a start")
			}
		default:
			msgOp = op
			msg = []byte{}
		}
		if len(msg)+len(payload) > wsMaxMessage {
			return 0, nil, errors.New("websocket: message too large")
		}
		msg = append(msg, payload...)
		if fin {
			return msgOp, msg, nil
		}
	}
}

func (c *wsConn) readFrame() (fin bool, op byte, payload []byte, err error) {
	var head [2]byte
	if _, err = io.ReadFull(c.br, head[:]); err != nil {
		return false, 0, nil, fmt.Errorf("websocket: read: %w", err)
	}
	fin = head[0]&0x80 != 0
	op = head[0] & 0x0F
	masked := head[1]&0x80 != 0
	n := uint64(head[1] & 0x7F)
	switch n {
	case 126:
		var ext [2]byte
		if _, err = io.ReadFull(c.br, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err = io.ReadFull(c.br, ext[:]); err != nil {
			return false, 0, nil, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > wsMaxMessage {
		return false, 0, nil, errors.New("websocket: frame too large")
	}
	var key [4]byte
	if masked {
		if _, err = io.ReadFull(c.br, key[:]); err != nil {
			return false, 0, nil, err
		}
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(c.br, payload); err != nil {
		return false, 0, nil, fmt.Errorf("websocket: read: %w", err)
	}
	if masked {
		for i := range payload {
			payload[i] ^= key[i%4]
		}
	}
	return fin, op, payload, nil
}

// Close sends a close frame (best effort) and closes the connection.
func (c *wsConn) Close() error {
	c.mu.Lock()
	_ = c.writeFrame(wsOpClose, []byte{0x03, 0xE8}) // 1000: normal closure
	c.mu.Unlock()
	return c.conn.Close()
}
