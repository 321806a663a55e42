//! Redis backends (standalone and Cluster). Not built yet.
