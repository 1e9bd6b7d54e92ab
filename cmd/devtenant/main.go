// Command devtenant serves a fake Microsoft Entra ID tenant for local
// development and `make demo`: discovery, authorize (with a sign-in page
// that lists the test users), token (codes, refresh tokens, access tokens
// for the demo API), keys and logout endpoints, with the users alice (in
// two groups) and bob.
//
// Nothing it issues is trusted anywhere else: the signing key is made at
// start and lives only in memory.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tfa-plugin/entraauth/entraid/entraidtest"
)

// Stable IDs, so that the demo configuration can be written before the
// tenant starts and users keep their oid across restarts.
const (
	devTenantID     = "9f8e7d6c-5b4a-4392-8170-6f5e4d3c2b1a"
	devClientID     = "3c2b1a09-8f7e-4d6c-9b5a-4e3d2c1b0a9f"
	devClientSecret = "dev-tenant-client-secret-not-for-production"
	engineeringID   = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"
	operationsID    = "1b2c3d4e-5f6a-4b7c-9d8e-9f0a1b2c3d4e"
	// demoAPI is an API the app may call as the user: the demo's upstream
	// gets an access token for it (upstreamAccessToken).
	demoAPI = "api://entraauth-demo-api"
)

// redirectURIs collects the repeatable -redirect-uri flag.
type redirectURIs []string

func (r *redirectURIs) String() string     { return strings.Join(*r, ",") }
func (r *redirectURIs) Set(v string) error { *r = append(*r, v); return nil }

var users = []entraidtest.User{
	{
		OID:               "5e4d3c2b-1a09-4f8e-a7d6-c5b4a3928170",
		Name:              "Alice Example",
		PreferredUsername: "alice@contoso.example",
		Email:             "alice@contoso.example",
		Groups:            []string{engineeringID, operationsID},
		Roles:             []string{"Admin"},
	},
	{
		OID:               "6f5e4d3c-2b1a-4091-b8f7-e6d5c4b3a291",
		Name:              "Bob Example",
		PreferredUsername: "bob@contoso.example",
		Email:             "bob@contoso.example",
	},
}

func main() {
	addr := flag.String("addr", "127.0.0.1:8091", "address to listen on")
	tenantID := flag.String("tenant-id", devTenantID, "tenant ID (GUID)")
	clientID := flag.String("client-id", devClientID, "client ID of the one registered application")
	clientSecret := flag.String("client-secret", devClientSecret, "client secret of the application")
	signIn := flag.String("sign-in", "", "sign this user (preferred username) in without showing the sign-in page")
	certificateFile := flag.String("certificate-file", "", "write a new certificate and its private key (PEM) to this file and upload the certificate to the app: a credential for clientCertificateFile")
	var registered redirectURIs
	flag.Var(&registered, "redirect-uri", "a redirect URI registered on the app (repeat the flag): sign-ins must use one, end-session returns only to one")
	flag.Parse()
	log.SetFlags(0)
	log.SetPrefix("devtenant: ")

	tenant := entraidtest.NewTenant(entraidtest.Options{
		TenantID:     *tenantID,
		ClientID:     *clientID,
		ClientSecret: *clientSecret,
		Users:        users,
		SignIn:       *signIn,
		Addr:         *addr,
		RedirectURIs: registered,
	})
	defer tenant.Close()
	if *certificateFile != "" {
		if err := writeCertificate(tenant, *certificateFile); err != nil {
			log.Fatal(err)
		}
	}
	api := tenant.AddAPI(entraidtest.API{IdentifierURI: demoAPI, Scopes: []string{"Demo.Read"}, TokenVersion: 2})

	fmt.Printf("Dev tenant (a fake Microsoft Entra ID) at %s\n", tenant.URL)
	fmt.Printf("  authorityHost: %s\n", tenant.URL)
	fmt.Printf("  tenantID:      %s\n", tenant.TenantID)
	fmt.Printf("  clientID:      %s\n", tenant.ClientID)
	fmt.Printf("  clientSecret:  %s\n", tenant.ClientSecret)
	if *certificateFile != "" {
		fmt.Printf("  certificate:   %s (clientCertificateFile)\n", *certificateFile)
	}
	fmt.Printf("  issuer:        %s\n", tenant.Issuer())
	fmt.Printf("  API:           %s (client ID %s), scope %s/.default\n", api.IdentifierURI, api.ClientID, api.IdentifierURI)
	fmt.Println("  users:")
	for _, u := range users {
		groups := "no groups"
		if len(u.Groups) > 0 {
			groups = "groups " + strings.Join(u.Groups, ", ")
		}
		fmt.Printf("    %-24s %s (oid %s, %s)\n", u.PreferredUsername, u.Name, u.OID, groups)
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, os.Interrupt, syscall.SIGTERM)
	<-stop
}

// writeCertificate makes a certificate for the app, as `openssl req -x509`
// and `az ad app credential reset --cert` would: the file gets the
// certificate and its key, the app registration the certificate. It is
// written to a temporary name and renamed, so that the plugin never reads
// half of it.
func writeCertificate(tenant *entraidtest.Tenant, path string) error {
	certPEM, both := entraidtest.NewCertificate("entraauth demo", time.Now().Add(-time.Hour), time.Now().Add(365*24*time.Hour))
	if _, err := tenant.UploadCertificate(tenant.ClientID, certPEM); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, both, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
