-- Intentionally empty. Up to tenantseal 0.x this migration created the reference domain's tables
-- (public.customers, public.invoices, public.documents). They are examples, not product: they now live
-- in examples/reference/migrations, applied with their own migrations table. The version is kept so that
-- databases migrated before stay consistent; migration 0005 removes the tables from those databases when
-- they are empty.
SELECT 1;
