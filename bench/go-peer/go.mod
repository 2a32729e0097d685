module tpk/go-peer

go 1.19
