package load

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"time"
)

// conn is one keep-alive HTTP/1.1 connection that sends prepared requests
// and reads their responses: no per-request allocation beyond what the
// server makes us read, so the generator takes as little of the machine's
// two cores as wrk would, and most goes to the server under test.
type conn struct {
	addr    string
	timeout time.Duration
	nc      net.Conn
	br      *bufio.Reader
	body    []byte // the last response body, when the caller wants it
}

// response is what the generator keeps of one response.
type response struct {
	status    int
	bytes     int  // status line, headers and body as received
	setCookie bool // the response carried a Set-Cookie header
	close     bool // the server will close the connection after it
}

var errMalformed = errors.New("malformed HTTP response")

func (c *conn) dial() error {
	nc, err := net.DialTimeout("tcp", c.addr, c.timeout)
	if err != nil {
		return err
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		_ = tc.SetNoDelay(true)
	}
	c.nc = nc
	if c.br == nil {
		c.br = bufio.NewReaderSize(nc, 32<<10)
	} else {
		c.br.Reset(nc)
	}
	return nil
}

func (c *conn) close() {
	if c.nc != nil {
		_ = c.nc.Close()
		c.nc = nil
	}
}

// do sends req (a complete HTTP/1.1 request) and reads the whole response.
// With keepBody the body is left in c.body. On any error the connection is
// closed, and the next call dials again.
func (c *conn) do(req []byte, keepBody bool) (response, error) {
	if c.nc == nil {
		if err := c.dial(); err != nil {
			return response{}, err
		}
	}
	_ = c.nc.SetDeadline(time.Now().Add(c.timeout))
	if _, err := c.nc.Write(req); err != nil {
		c.close()
		return response{}, err
	}
	res, err := c.read(keepBody)
	if err != nil || res.close {
		c.close()
	}
	return res, err
}

// read parses one response: status line, headers, then a body framed by
// Content-Length, chunked encoding, or the end of the connection.
func (c *conn) read(keepBody bool) (response, error) {
	var res response
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return res, err
	}
	res.bytes += len(line)
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
		return res, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	res.status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return res, fmt.Errorf("%w: status line %q", errMalformed, line)
	}
	res.close = line[7] == '0' // HTTP/1.0 closes unless told otherwise
	contentLength, chunked := -1, false
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return res, err
		}
		res.bytes += len(line)
		h := bytes.TrimRight(line, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return res, fmt.Errorf("%w: header %q", errMalformed, h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if contentLength, err = strconv.Atoi(string(value)); err != nil || contentLength < 0 {
				return res, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
		case bytes.EqualFold(name, []byte("Connection")):
			res.close = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Set-Cookie")):
			res.setCookie = true
		}
	}
	c.body = c.body[:0]
	switch {
	case res.status == 204 || res.status == 304 || res.status < 200:
		return res, nil
	case chunked:
		err = c.readChunked(&res, keepBody)
	case contentLength >= 0:
		err = c.readN(&res, contentLength, keepBody)
	default:
		res.close = true
		err = c.readN(&res, -1, keepBody)
	}
	return res, err
}

// readN reads n body bytes, or up to the end of the connection when n < 0.
func (c *conn) readN(res *response, n int, keep bool) error {
	var r io.Reader = c.br
	if n >= 0 {
		r = io.LimitReader(c.br, int64(n))
	}
	var got int64
	var err error
	if keep {
		buf := bytes.NewBuffer(c.body)
		got, err = buf.ReadFrom(r)
		c.body = buf.Bytes()
	} else {
		got, err = io.Copy(io.Discard, r)
	}
	res.bytes += int(got)
	if err == nil && n >= 0 && got < int64(n) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readChunked reads a chunked body and its trailers.
func (c *conn) readChunked(res *response, keep bool) error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		res.bytes += len(line)
		size := bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(size, ';'); i >= 0 {
			size = size[:i]
		}
		n, err := strconv.ParseInt(string(bytes.TrimSpace(size)), 16, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if n == 0 {
			break
		}
		if err := c.readN(res, int(n), keep); err != nil {
			return err
		}
		crlf, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		res.bytes += len(crlf)
	}
	for { // trailers, then the blank line
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		res.bytes += len(line)
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			return nil
		}
	}
}
