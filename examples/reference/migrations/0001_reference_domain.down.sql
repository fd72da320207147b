DELETE FROM tenantseal.encrypted_columns
 WHERE table_name IN ('public.customers'::regclass, 'public.invoices'::regclass, 'public.documents'::regclass);
DROP TABLE public.documents;
DROP TABLE public.invoices;
DROP TABLE public.customers;
