DROP TABLE public.documents;
DROP TABLE public.invoices;
DROP TABLE public.customers;
