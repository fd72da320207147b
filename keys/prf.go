package keys

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"sync"

	"github.com/tink-crypto/tink-go/v2/insecuresecretdataaccess"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/prf/hmacprf"
)

// hmacPRF computes the PRF of one HMAC key of a tenant's PRF keyset, as Tink's HMAC PRF does, without
// keying a new HMAC for every value: Tink's makes one per call (its hash states and key pads, two hash
// blocks of work and several allocations), for every blind index of every write. The HMACs here are
// keyed once and kept in a pool; Reset returns one to its keyed state. Like Tink's primitive, it holds
// the key for as long as the tenant's keysets are cached, and prints nothing of it.
type hmacPRF struct {
	size int
	pool sync.Pool // of keyed hash.Hash
}

// hmacPRFs returns the HMAC PRFs of the enabled keys of h by key id. Keys of another kind, or HMACs
// over another hash than SHA-256 and SHA-512, are left to Tink's prf.Set.
func hmacPRFs(h *keyset.Handle) map[uint32]*hmacPRF {
	out := map[uint32]*hmacPRF{}
	for i := range h.Len() {
		e, err := h.Entry(i)
		if err != nil || e.KeyStatus() != keyset.Enabled {
			continue
		}
		k, ok := e.Key().(*hmacprf.Key)
		if !ok {
			continue
		}
		params, ok := k.Parameters().(*hmacprf.Parameters)
		if !ok {
			continue
		}
		var newHash func() hash.Hash
		switch params.HashType() {
		case hmacprf.SHA256:
			newHash = sha256.New
		case hmacprf.SHA512:
			newHash = sha512.New
		default:
			continue
		}
		key := k.KeyBytes().Data(insecuresecretdataaccess.Token{})
		p := &hmacPRF{size: newHash().Size()}
		p.pool.New = func() any { return hmac.New(newHash, key) }
		out[e.KeyID()] = p
	}
	return out
}

// appendPRF appends the HMAC of data to b, all p.size bytes of it.
func (p *hmacPRF) appendPRF(b, data []byte) []byte {
	m := p.pool.Get().(hash.Hash)
	m.Write(data)
	b = m.Sum(b)
	m.Reset()
	p.pool.Put(m)
	return b
}
