-- The tenant registry moves from public into the tenantseal schema: tenantseal keeps nothing in public,
-- so an application's own public.tenants (or none) is left to the application. Its policies, grants and
-- the foreign keys that reference it move with it.
ALTER TABLE public.tenants SET SCHEMA tenantseal;
