//! intake-engine: templates and the pipeline (placeholder until the template model lands).
