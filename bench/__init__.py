"""Benchmarks (`make bench`): each prints a table of figures and the machine it ran on."""

from evalgrid.forking import keep_grpc_out_of_forks

keep_grpc_out_of_forks()  # as the `evalgrid` command does, before a bench loads grpc
