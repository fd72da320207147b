package reference

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/tenantseal/tenantseal"
	"github.com/tenantseal/tenantseal/db"
	"github.com/tenantseal/tenantseal/keys"
	"github.com/tenantseal/tenantseal/repo"
)

// DefaultMaxBody bounds a document body unless [Documents.MaxBody] says otherwise.
const DefaultMaxBody = 512 << 10

// ErrTooLarge means a document body exceeds [Documents.MaxBody]. Nothing was written. Use errors.Is.
var ErrTooLarge = errors.New("reference: document body exceeds the size limit")

// Document is a row of public.documents. Body is stored encrypted.
type Document struct {
	TenantID    tenantseal.TenantID `ts:"tenant_id,tenant"`
	ID          repo.ID             `ts:"id,pk"`
	InvoiceID   repo.ID             `ts:"invoice_id"`
	Filename    string              `ts:"filename"`
	ContentType string              `ts:"content_type"`
	Size        int64               `ts:"size"`
	Body        []byte              `ts:"body,encrypted"`
	CreatedAt   time.Time           `ts:"created_at,readonly"`
}

// Documents is the documents repository.
type Documents struct {
	*repo.Table[Document]
	// MaxBody bounds a body in bytes. It must not exceed the keyring's MaxFieldSize.
	MaxBody int64
}

// NewDocuments returns the documents repository.
func NewDocuments(ctx context.Context, pool *db.Pool, kr *keys.Keyring) (*Documents, error) {
	t, err := repo.New[Document](ctx, pool, kr, "public.documents")
	if err != nil {
		return nil, err
	}
	return &Documents{Table: t, MaxBody: DefaultMaxBody}, nil
}

// Upload reads the body from r, at most MaxBody bytes ([ErrTooLarge] beyond, nothing written), sets
// d.Size and d.Body and inserts d.
func (r *Documents) Upload(ctx context.Context, d *Document, body io.Reader) error {
	if _, err := tenantseal.TenantFrom(ctx); err != nil {
		return err
	}
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.LimitReader(body, r.MaxBody+1))
	if err != nil {
		return fmt.Errorf("reference: read document body: %w", err)
	}
	if n > r.MaxBody {
		return fmt.Errorf("%w: more than %d bytes", ErrTooLarge, r.MaxBody)
	}
	d.Body, d.Size = buf.Bytes(), n
	return r.Insert(ctx, d)
}

// Download writes the document's decrypted body to w and returns the document (Body left nil).
func (r *Documents) Download(ctx context.Context, id repo.ID, w io.Writer) (Document, error) {
	d, err := r.Get(ctx, id)
	if err != nil {
		return Document{}, err
	}
	if int64(len(d.Body)) != d.Size {
		return Document{}, errors.New("reference: document body length differs from its recorded size")
	}
	if _, err := w.Write(d.Body); err != nil {
		return Document{}, fmt.Errorf("reference: write document body: %w", err)
	}
	d.Body = nil
	return d, nil
}
