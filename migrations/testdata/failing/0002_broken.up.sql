-- Statements before the failing one; each holds a semicolon where it does not end it.
CREATE TABLE failing_second (id int PRIMARY KEY, note text DEFAULT 'a; b');

CREATE FUNCTION failing_fn() RETURNS int LANGUAGE plpgsql AS $body$
BEGIN
    RETURN 1; -- one
END
$body$;

/* a comment; with a semicolon */ INSERT INTO failing_first (id) VALUES (1);

INSERT INTO failing_second (id)
SELECT id
  FROM failing_missing;

CREATE TABLE failing_third (id int);
