package pool

// HTTP token helpers shared with the proxy (RFC 9110 §5.6.1 lists: elements
// separated by commas and optional whitespace; tokens compare
// case-insensitively).

// asciiEqualFold reports whether b equals s ignoring ASCII case.
func asciiEqualFold[T []byte | string](b []byte, s T) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// EqualFold reports whether b equals s ignoring ASCII case.
func EqualFold[T []byte | string](b []byte, s T) bool { return asciiEqualFold(b, s) }

// HasToken reports whether the comma-separated list contains token,
// ignoring ASCII case and optional whitespace.
func HasToken[T []byte | string](list []byte, token T) bool {
	for len(list) > 0 {
		var elem []byte
		elem, list = nextElem(list)
		if asciiEqualFold(elem, token) {
			return true
		}
	}
	return false
}

// lastTokenIs reports whether the last element of list is token.
func lastTokenIs(list []byte, token string) bool {
	var last []byte
	for len(list) > 0 {
		var elem []byte
		elem, list = nextElem(list)
		if len(elem) > 0 {
			last = elem
		}
	}
	return asciiEqualFold(last, token)
}

// nextElem splits the first list element off list, trimmed of whitespace.
func nextElem(list []byte) (elem, rest []byte) {
	i := 0
	for i < len(list) && list[i] != ',' {
		i++
	}
	elem, rest = list[:i], list[min(i+1, len(list)):]
	for len(elem) > 0 && (elem[0] == ' ' || elem[0] == '\t') {
		elem = elem[1:]
	}
	for len(elem) > 0 && (elem[len(elem)-1] == ' ' || elem[len(elem)-1] == '\t') {
		elem = elem[:len(elem)-1]
	}
	return elem, rest
}
