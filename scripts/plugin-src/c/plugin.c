/*
 * A stand-in Velero plugin binary: prints which one it is and exits 0. PLUGIN_NAME (a string
 * macro given with -D) makes the builds of the lab's plugins differ, so two plugins with the
 * same file name still have different bytes.
 */
#include <stdio.h>

#ifndef PLUGIN_NAME
#error "build with -DPLUGIN_NAME='\"name\"'"
#endif

int main(void)
{
    printf("velero-airgap lab plugin %s\n", PLUGIN_NAME);
    return 0;
}
