package rekey

// SetReencryptHook sets a function that runs between reading a batch and rewriting it.
func SetReencryptHook(f func()) { testHookAfterRead = f }
