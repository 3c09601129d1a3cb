//! Writes a Plan as a layered GitOps tree of files, per flavor; the only I/O is writing that tree.
