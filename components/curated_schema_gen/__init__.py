"""ImportSchemaGen whose cache key includes the schema file's content."""
