//go:build linux

package bpf

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// preferredCgroup2 is where the hybrid hierarchy mounts cgroup v2; it is
// used when present, else the first cgroup2 mount in /proc/self/mountinfo.
const preferredCgroup2 = "/sys/fs/cgroup/unified"

// JoinCgroup creates the cgroup v2 directory name (a relative name is put
// under the cgroup2 mount, an absolute path is used as is) and moves this
// whole process into it, returning its absolute path for AttachSockOps.
//
// A socket belongs to the cgroup of the process that created it, and
// accepted sockets inherit their listener's, so the server must join before
// listen() for sock_ops to count its connections.
func JoinCgroup(name string) (string, error) {
	if name == "" {
		return "", fmt.Errorf("join cgroup: empty name")
	}
	path := name
	if !filepath.IsAbs(name) {
		if strings.Contains(name, "..") {
			return "", fmt.Errorf("join cgroup: name %q leaves the hierarchy", name)
		}
		root, err := Cgroup2Mount()
		if err != nil {
			return "", err
		}
		path = filepath.Join(root, name)
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return "", fmt.Errorf("join cgroup: %w", err)
	}
	if err := moveSelf(path); err != nil {
		return "", fmt.Errorf("join cgroup: %w", err)
	}
	return path, nil
}

// LeaveCgroup moves this process to path's parent cgroup and removes path
// if no other process is left in it.
func LeaveCgroup(path string) error {
	if err := moveSelf(filepath.Dir(path)); err != nil {
		return fmt.Errorf("leave cgroup: %w", err)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("leave cgroup: %w", err)
	}
	return nil
}

// moveSelf writes this process's id to dir/cgroup.procs, which moves all of
// its threads (cgroup v2, Documentation/admin-guide/cgroup-v2.rst).
func moveSelf(dir string) error {
	pid := strconv.Itoa(os.Getpid())
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0)
}

// Cgroup2Mount finds a mounted cgroup v2 hierarchy.
func Cgroup2Mount() (string, error) {
	if ok, _ := isCgroup2(preferredCgroup2); ok {
		return preferredCgroup2, nil
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCgroup2, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// mountinfo: id parent major:minor root mountpoint opts... - fstype source superopts
		fields := strings.Fields(sc.Text())
		for i, fld := range fields {
			if fld == "-" && i+1 < len(fields) && fields[i+1] == "cgroup2" && len(fields) > 4 {
				return fields[4], nil
			}
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoCgroup2, err)
	}
	return "", ErrNoCgroup2
}

func isCgroup2(path string) (bool, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return false, err
	}
	return st.Type == unix.CGROUP2_SUPER_MAGIC, nil
}
