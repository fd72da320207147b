// Package uuid formats and parses UUIDs in their canonical text form, without allocation beyond the result.
package uuid

import (
	"encoding/hex"
	"errors"
)

// ErrSyntax means a string is not a UUID in 8-4-4-4-12 form.
var ErrSyntax = errors.New("not a UUID in 8-4-4-4-12 form")

// Format formats u in the canonical lower-case 8-4-4-4-12 form.
func Format(u [16]byte) string {
	var buf [36]byte
	return string(Append(buf[:0], u))
}

// Append appends u to b in the canonical lower-case 8-4-4-4-12 form.
func Append(b []byte, u [16]byte) []byte {
	n := len(b)
	b = append(b, make([]byte, 36)...)
	buf := b[n:]
	hex.Encode(buf[0:8], u[0:4])
	buf[8] = '-'
	hex.Encode(buf[9:13], u[4:6])
	buf[13] = '-'
	hex.Encode(buf[14:18], u[6:8])
	buf[18] = '-'
	hex.Encode(buf[19:23], u[8:10])
	buf[23] = '-'
	hex.Encode(buf[24:], u[10:])
	return b
}

// Parse parses the canonical 8-4-4-4-12 form, upper or lower case.
func Parse(s string) ([16]byte, error) {
	var u [16]byte
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return u, ErrSyntax
	}
	src := s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
	if _, err := hex.Decode(u[:], []byte(src)); err != nil {
		return [16]byte{}, ErrSyntax
	}
	return u, nil
}
