package handlers

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"

	"github.com/cloudwego/hertz/pkg/app"
	"github.com/cloudwego/hertz/pkg/protocol/consts"
)

// serveDisk answers a request that missed the cache: it resolves rel under
// Root (directory → 301 or index), then either loads a small file into the
// cache or streams a large one. rel has no leading slash; a trailing slash
// marks a directory request.
func (s *Static) serveDisk(c *app.RequestContext, rel string, dirReq, isGet bool) {
	name := strings.TrimSuffix(rel, "/")
	if name == "" {
		name = "."
	}
	f, fi, code := s.open(name)
	if code != 0 {
		staticError(c, code)
		return
	}
	switch {
	case fi.IsDir():
		f.Close()
		if !dirReq {
			staticRedirect(c)
			return
		}
		name = path.Join(name, s.index)
		if f, fi, code = s.open(name); code == consts.StatusNotFound {
			code = consts.StatusForbidden // like nginx: no index, no listing
		}
		if code != 0 {
			staticError(c, code)
			return
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			staticError(c, consts.StatusForbidden)
			return
		}
	case dirReq:
		f.Close() // "file.txt/" names no directory
		staticError(c, consts.StatusNotFound)
		return
	case !fi.Mode().IsRegular():
		f.Close() // devices, FIFOs and sockets are never served
		staticError(c, consts.StatusForbidden)
		return
	}

	e := newStaticEntry(name, nil, fi.Size(), fi.ModTime(), nil)
	e.key = rel
	if e.size > s.maxFile {
		s.serveEntry(c, e, f, isGet)
		return
	}
	body := make([]byte, e.size)
	_, err := io.ReadFull(f, body)
	f.Close()
	if err != nil {
		staticError(c, consts.StatusInternalServerError)
		return
	}
	e.body = body
	e.checked.Store(s.now().UnixNano())
	s.cache.put(rel, e)
	s.serveEntry(c, e, nil, isGet)
}

// open opens name beneath Root and stats it, mapping failures to the
// status nginx would send: 404 for names that do not exist, 403 for
// permission errors, symlink loops and names that resolve outside Root.
// O_NONBLOCK keeps a FIFO planted in Root from blocking the open; it has
// no effect on regular files.
func (s *Static) open(name string) (*os.File, fs.FileInfo, int) {
	f, err := s.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, staticErrStatus(err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, staticErrStatus(err)
	}
	return f, fi, 0
}

func staticErrStatus(err error) int {
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.ENAMETOOLONG):
		return consts.StatusNotFound
	case errors.Is(err, os.ErrClosed):
		return consts.StatusServiceUnavailable
	default:
		return consts.StatusForbidden
	}
}

// streamFile hands n bytes of f from offset start to hertz as the body.
func (s *Static) streamFile(c *app.RequestContext, f *os.File, start, n int64) {
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			f.Close()
			staticError(c, consts.StatusInternalServerError)
			return
		}
	}
	c.Response.SetBodyStream(&staticFileStream{f: f, n: n}, int(n))
}

// staticFileStream yields exactly n bytes of a file from its current
// offset and closes the file when hertz is done with the body.
//
// It also exposes the file's SyscallConn: hertz writes a sized body
// through an io.LimitedReader, and on the standard transport that reaches
// net.TCPConn.ReadFrom, which uses sendfile(2) for a syscall.Conn under a
// LimitedReader — so large files go from page cache to socket without a
// copy through user space. On netpoll the body is copied through Read.
type staticFileStream struct {
	f *os.File
	n int64 // bytes left to read
}

func (r *staticFileStream) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	n, err := r.f.Read(p)
	r.n -= int64(n)
	if err == io.EOF && r.n > 0 {
		err = io.ErrUnexpectedEOF // the file shrank under us
	}
	return n, err
}

func (r *staticFileStream) SyscallConn() (syscall.RawConn, error) { return r.f.SyscallConn() }

func (r *staticFileStream) Close() error { return r.f.Close() }
