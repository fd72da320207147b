-- Migration 0002 of earlier tenantseal versions created the reference domain's tables
-- (public.customers, public.invoices, public.documents) in every database. They are examples, not
-- product: examples/reference/migrations creates them now, where wanted. This removes them, and their
-- rows of tenantseal.encrypted_columns, from databases that got them, but only when none of them holds a
-- row and nothing else depends on them. Otherwise it keeps them, as they are, and says why with a
-- WARNING. A fresh database never had them, and where the examples' migrations created them (their
-- migrations table exists) they are not leftovers: then this does nothing.
DO $$
DECLARE
    tables text[] := ARRAY['public.documents', 'public.invoices', 'public.customers'];
    present regclass[] := '{}';
    names text[] := '{}'; -- of present, schema-qualified, for messages
    held text[] := '{}';
    t text;
    tbl regclass;
    has_rows boolean;
    was_forced boolean;
    dependents text;
BEGIN
    -- Tables that examples/reference/migrations created are that set's, not leftovers of 0002.
    IF to_regclass('tenantseal_migrations.reference') IS NOT NULL THEN
        RETURN;
    END IF;
    FOREACH t IN ARRAY tables LOOP
        tbl := to_regclass(t);
        IF tbl IS NULL THEN
            CONTINUE;
        END IF;
        present := present || tbl;
        names := names || t;
        -- Forced row-level security hides every row from the owner without a tenant context: look with
        -- it lifted for this one query (the transaction restores it on any error).
        SELECT relforcerowsecurity INTO was_forced FROM pg_class WHERE oid = tbl;
        EXECUTE format('ALTER TABLE %s NO FORCE ROW LEVEL SECURITY', tbl);
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %s)', tbl) INTO has_rows;
        IF was_forced THEN
            EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
        END IF;
        IF has_rows THEN
            held := held || t;
        END IF;
    END LOOP;
    IF cardinality(present) = 0 THEN
        RETURN;
    END IF;
    IF cardinality(held) > 0 THEN
        RAISE WARNING 'tenantseal: kept %: they hold rows (%). Earlier tenantseal versions created these example '
            'tables; they are yours now, and tenantseal''s migrations will not touch them again. '
            'examples/reference/migrations describes them: to manage them with it, mark it applied with '
            'migrate -source file://examples/reference/migrations -database ''<owner DSN>?x-migrations-table="tenantseal_migrations"."reference"&x-migrations-table-quoted=1'' force 1',
            array_to_string(names, ', '), array_to_string(held, ', ');
        RETURN;
    END IF;
    BEGIN
        DELETE FROM tenantseal.encrypted_columns WHERE table_name = ANY (present);
        FOREACH tbl IN ARRAY present LOOP
            EXECUTE format('DROP TABLE %s', tbl);
        END LOOP;
    EXCEPTION WHEN dependent_objects_still_exist THEN
        -- Never cascade into the owner's own objects: keep the tables (and their registry rows) instead.
        GET STACKED DIAGNOSTICS dependents = PG_EXCEPTION_DETAIL;
        RAISE WARNING 'tenantseal: kept the empty example tables %: other objects depend on them (%). They are yours now; drop them yourself when you no longer need them',
            array_to_string(names, ', '), replace(dependents, E'\n', '; ');
        RETURN;
    END;
    RAISE NOTICE 'tenantseal: dropped the empty example tables %', array_to_string(names, ', ');
END $$;
