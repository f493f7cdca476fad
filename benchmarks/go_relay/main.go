// A featureless HTTP/1.1 relay for benchmarks/hop_floor.py --minimal-relays: how little a
// compiled relay can add on this host. One goroutine per client connection with its own upstream
// connection; each request read whole (Content-Length or chunked), written upstream, its answer
// read whole and written back. No header rewriting, pooling, retries, metrics or logs: a floor,
// not a proxy.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"io"
	"log"
	"net"
	"strconv"
	"sync/atomic"
)

// readMessage reads one HTTP/1.1 message (head + body framed by content-length or chunked) into buf.
func readMessage(r *bufio.Reader, buf *bytes.Buffer) error {
	buf.Reset()
	cl := -1
	chunked := false
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return err
		}
		buf.Write(line)
		if len(line) <= 2 {
			break
		}
		if i := bytes.IndexByte(line, ':'); i > 0 {
			name := bytes.ToLower(line[:i])
			val := bytes.TrimSpace(line[i+1:])
			if string(name) == "content-length" {
				cl, _ = strconv.Atoi(string(val))
			} else if string(name) == "transfer-encoding" {
				chunked = true
			}
		}
	}
	if chunked {
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				return err
			}
			buf.Write(line)
			n, _ := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			if _, err := io.CopyN(buf, r, n+2); err != nil {
				return err
			}
			if n == 0 {
				return nil
			}
		}
	}
	if cl > 0 {
		_, err := io.CopyN(buf, r, int64(cl))
		return err
	}
	return nil
}

var rerankSeen atomic.Int64

func handle(c net.Conn, upstream string) {
	defer c.Close()
	u, err := net.Dial("tcp", upstream)
	if err != nil {
		return
	}
	defer u.Close()
	cr := bufio.NewReaderSize(c, 65536)
	ur := bufio.NewReaderSize(u, 65536)
	var req, ans bytes.Buffer
	for {
		if err := readMessage(cr, &req); err != nil {
			return
		}
		if bytes.Contains(req.Bytes(), []byte("rerank")) {
			rerankSeen.Add(1) // the byte scan a pass-through relay makes; nothing here reranks
		}
		if _, err := u.Write(req.Bytes()); err != nil {
			return
		}
		if err := readMessage(ur, &ans); err != nil {
			return
		}
		if _, err := c.Write(ans.Bytes()); err != nil {
			return
		}
	}
}

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "")
	upstream := flag.String("upstream", "", "host:port")
	flag.Parse()
	l, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go handle(c, *upstream)
	}
}
