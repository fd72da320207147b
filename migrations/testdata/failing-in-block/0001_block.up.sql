CREATE TABLE failing_block (id int);

DO $$
BEGIN
    RAISE EXCEPTION 'failing on purpose';
END $$;

CREATE TABLE failing_after (id int);
