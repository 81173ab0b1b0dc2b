"""The provincial coordinator: the shell around the domain (coordinator/domain/)."""

from evalgrid.forking import keep_grpc_out_of_forks

keep_grpc_out_of_forks()  # before grpc is imported: a day plan forks its drawing process
