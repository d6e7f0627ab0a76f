//! intake-mappers: the mapper chain (placeholder until field mapping lands).
