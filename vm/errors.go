package vm

import "errors"

var (
	// ErrUnknownKernel is returned for a kernel name not in Kernels.
	ErrUnknownKernel = errors.New("unknown kernel")
	// ErrMissingTool is returned when a host tool the VM needs (QEMU,
	// static busybox, apt, dpkg-deb) is not installed; hack/deps.sh vm
	// installs them.
	ErrMissingTool = errors.New("missing host tool")
	// ErrTimeout is returned when the guest did not finish in time and was
	// stopped.
	ErrTimeout = errors.New("guest timed out")
	// ErrNoExitCode is returned when the guest stopped without reporting the
	// command's exit code: its setup failed, its kernel panicked, or QEMU
	// died.
	ErrNoExitCode = errors.New("guest stopped without an exit code")
)
