// placeholder: filled in phase 2
#include "kernels/kernels_impl.h"
void tv_x86_install_avx2(tv_type_traits *t, bool vnni) { (void)t; (void)vnni; }
void tv_x86_install_avx512(tv_type_traits *t, bool vnni) { (void)t; (void)vnni; }
