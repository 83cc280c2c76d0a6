"""One file over many connections. Pure decisions (ranges, plan, retry, failures, rules,
options) apart from the I/O (store, download, measure). Imports only segfetch.errors and
segfetch.units from outside this folder."""
