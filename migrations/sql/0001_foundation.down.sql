DROP TABLE public.tenants;
DROP SCHEMA tenantseal CASCADE;
