// The signal that kicks a vCPU thread out of KVM_RUN (deadline timer, cancel), and its handler.
#pragma once

#include <linux/kvm.h>

namespace unifn::vmm {

// SIGRTMIN + 2, sent to the thread in KvmMachine::run.
int kick_signal();

// Installs the handler once per process. It sets immediate_exit of the kvm_run the thread
// registered with set_kick_target, so KVM_RUN returns EINTR now or on its next entry. SA_RESTART is
// set: KVM_RUN answers -EINTR, which the kernel never restarts, while any other system call the
// kick lands in (a log write, a snapshot pread inside an exit handler) is restarted instead of
// failing with EINTR, which once made a log sink throw on the vCPU thread.
void install_kick_handler();

// The kvm_run this thread enters, or nullptr when it enters none.
void set_kick_target(kvm_run* run);

}  // namespace unifn::vmm
