DROP TABLE failing_third;
DROP FUNCTION failing_fn();
DROP TABLE failing_second;
