-- The reference domain of tenantseal's examples: customers, invoices, documents. Apply after tenantseal's
-- own migrations, as the owner role, with its own migrations table:
--
--   migrate -source file://examples/reference/migrations \
--     -database 'pgx5://<owner>@host/db?x-migrations-table="tenantseal_migrations"."reference"&x-migrations-table-quoted=1' up
--
-- Every table carries tenant_id, leads its primary key, unique constraints and indexes with it,
-- references parents through composite (tenant_id, id) keys and is put under forced row-level security
-- by tenantseal.protect_table. Encrypted columns hold ciphertext only (bytea) and are registered in
-- tenantseal.encrypted_columns; *_bidx columns hold blind indexes for exact lookups.

CREATE TABLE public.customers (
    tenant_id    uuid NOT NULL DEFAULT tenantseal.current_tenant(),
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    email        bytea,
    email_bidx   bytea,
    phone        bytea,
    notes        bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    version      bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id) REFERENCES tenantseal.tenants (id)
);
CREATE UNIQUE INDEX customers_email_bidx ON public.customers (tenant_id, email_bidx);
CREATE INDEX customers_created ON public.customers (tenant_id, created_at, id);

CREATE TABLE public.invoices (
    tenant_id    uuid NOT NULL DEFAULT tenantseal.current_tenant(),
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    customer_id  uuid NOT NULL,
    amount_minor bigint NOT NULL,
    currency     char(3) NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
    status       text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'issued', 'paid', 'void')),
    memo         bytea,
    issued_at    timestamptz,
    version      bigint NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, customer_id) REFERENCES public.customers (tenant_id, id)
);
CREATE INDEX invoices_customer ON public.invoices (tenant_id, customer_id);
CREATE INDEX invoices_status ON public.invoices (tenant_id, status);

CREATE TABLE public.documents (
    tenant_id    uuid NOT NULL DEFAULT tenantseal.current_tenant(),
    id           uuid NOT NULL DEFAULT gen_random_uuid(),
    invoice_id   uuid NOT NULL,
    filename     text NOT NULL CHECK (length(filename) BETWEEN 1 AND 255),
    content_type text NOT NULL,
    size         bigint NOT NULL CHECK (size >= 0),
    body         bytea,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, invoice_id) REFERENCES public.invoices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX documents_invoice ON public.documents (tenant_id, invoice_id);

-- Forced row-level security, the app role's DML grants and the probe's view of (tenant_id, id).
SELECT tenantseal.protect_table('public.customers');
SELECT tenantseal.protect_table('public.invoices');
SELECT tenantseal.protect_table('public.documents');

-- Re-encryption and key retirement walk this registry; repo.New refuses an unregistered encrypted field.
INSERT INTO tenantseal.encrypted_columns VALUES
    ('public.customers', 'email', 'email_bidx', 'email'),
    ('public.customers', 'phone', NULL, 'exact'),
    ('public.customers', 'notes', NULL, 'exact'),
    ('public.invoices', 'memo', NULL, 'exact'),
    ('public.documents', 'body', NULL, 'exact');
