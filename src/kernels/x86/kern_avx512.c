// kern_avx512.c — placeholder until the AVX-512 kernels land: the AVX2 kernels serve the path.
#include "kernels/kernels_impl.h"
void tv_x86_install_avx512(tv_type_traits *t, bool vnni) { tv_x86_install_avx2(t, vnni); }
