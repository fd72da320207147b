DROP TABLE failing_first;
