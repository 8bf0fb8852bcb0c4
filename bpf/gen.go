package bpf

// The C programs are compiled by bpf2go into the committed
// classify_bpfel.{go,o} and deliver_bpfel.{go,o}; `make generate-bpf`
// reruns these lines. The output depends only on the sources and the
// compiler (Debian clang 14, libbpf-dev headers), not on where the
// repository is checked out.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -type vpblu_drop -type vpblu_hook -type vpblu_verdict -type vpblu_reason -type vpblu_rule -type vpblu_lpm4 -type vpblu_lpm6 -type vpblu_block4 -type vpblu_block6 -type vpblu_remote -type vpblu_node -type vpblu_class4 -type vpblu_class6 -type vpblu_dst4 -type vpblu_dst6 -type vpblu_inline -type vpblu_config_flag -type vpblu_node_flag classify classify.c -- -I/usr/include/x86_64-linux-gnu
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -mcpu=v3" -target bpfel -type vpblu_drop -type vpblu_hook -type vpblu_verdict -type vpblu_reason -type vpblu_rule -type vpblu_lpm4 -type vpblu_lpm6 -type vpblu_block4 -type vpblu_block6 -type vpblu_remote -type vpblu_node -type vpblu_class4 -type vpblu_class6 -type vpblu_dst4 -type vpblu_dst6 -type vpblu_inline -type vpblu_config_flag -type vpblu_node_flag deliver deliver.c -- -I/usr/include/x86_64-linux-gnu
