// Source code is not scanned for assignments: tests and examples assign made-up values.
let password = "hunter2hunter2xyz";
const API_TOKEN: &str = "ghp_aaaa1111bbbb2222cccc";
