// Package kmstest runs an AWS KMS-compatible emulator (github.com/nsmithuk/local-kms) in the test
// process, on 127.0.0.1, so that KEKs held in a KMS are tested for real: requests signed and sent over
// HTTP, keys created, encrypted and decrypted by the emulator. It is a test kit: only tests import it.
package kmstest

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awskmsapi "github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/nsmithuk/local-kms/src/config"
	"github.com/nsmithuk/local-kms/src/data"
	"github.com/nsmithuk/local-kms/src/handler"
	"github.com/sirupsen/logrus"
	"github.com/tink-crypto/tink-go-awskms/v3/integration/awskms"

	"github.com/tenantseal/tenantseal/keys"
)

// Region and Account are the emulator's: every key ARN names them.
const (
	Region  = "eu-west-2"
	Account = "111122223333"
)

// KMS is a running emulator.
type KMS struct {
	// Endpoint is its URL, http://127.0.0.1:<port>.
	Endpoint string
	api      *awskmsapi.Client
}

// the emulator keeps its region and account in package variables: one configuration per process.
var configure sync.Once

// Start runs an emulator for the rest of the test, with its key store in a temporary directory.
func Start(t testing.TB) *KMS {
	t.Helper()
	configure.Do(func() { config.AWSRegion, config.AWSAccountId = Region, Account })
	store := data.NewDatabase(t.TempDir())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		serve(w, r, store)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		store.Close()
	})
	k := &KMS{Endpoint: srv.URL}
	k.api = awskmsapi.New(awskmsapi.Options{
		Region:       Region,
		BaseEndpoint: aws.String(k.Endpoint),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
	return k
}

// quiet is the emulator's logger: it would print every call.
var quiet = func() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return l
}()

// serve answers one KMS API request as the emulator's own server does: the operation named by the
// X-Amz-Target header ("TrentService.Encrypt"), a method of its request handler.
func serve(w http.ResponseWriter, r *http.Request, store *data.Database) {
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "TrentService.")
	m := reflect.ValueOf(handler.NewRequestHandler(r, quiet, store)).MethodByName(op)
	if r.Method != http.MethodPost || !ok || !m.IsValid() {
		http.Error(w, "kmstest: not a KMS API request", http.StatusNotImplemented)
		return
	}
	res := m.Call(nil)[0].Interface().(handler.Response)
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.WriteHeader(res.Code)
	io.WriteString(w, res.Body)
}

// NewKey creates a symmetric key in the emulator and returns its aws-kms:// URI.
func (k *KMS) NewKey(t testing.TB) string {
	t.Helper()
	out, err := k.api.CreateKey(context.Background(), &awskmsapi.CreateKeyInput{Description: aws.String(t.Name())})
	if err != nil {
		t.Fatalf("kmstest: create key: %v", err)
	}
	return "aws-kms://" + aws.ToString(out.KeyMetadata.Arn)
}

// DisableKey disables the key of uri, as a customer revoking access would.
func (k *KMS) DisableKey(t testing.TB, uri string) {
	t.Helper()
	arn := uri[len("aws-kms://"):]
	if _, err := k.api.DisableKey(context.Background(), &awskmsapi.DisableKeyInput{KeyId: aws.String(arn)}); err != nil {
		t.Fatalf("kmstest: disable key: %v", err)
	}
}

// Client returns a Tink AWS KMS client that talks to the emulator, for tests that cannot set the
// environment (parallel ones).
func (k *KMS) Client(t testing.TB) keys.KMSClient {
	t.Helper()
	c, err := awskms.NewClientWithOptions(context.Background(), "aws-kms://arn:aws:kms:"+Region+":", awskms.WithKMS(k.api))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Setenv points the AWS SDK's default configuration at the emulator, with test credentials, for the
// rest of the test: what a deployment does with AWS_ENDPOINT_URL_KMS and its credentials.
func (k *KMS) Setenv(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL_KMS", k.Endpoint)
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test")
	t.Setenv("AWS_REGION", Region)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
}
