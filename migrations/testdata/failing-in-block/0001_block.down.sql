DROP TABLE failing_after;
DROP TABLE failing_block;
