//go:build !unix

package limit

import "errors"

// lingerZero is not available off Unix; Reset closes such sockets with a FIN.
func lingerZero(int) error { return errors.ErrUnsupported }
