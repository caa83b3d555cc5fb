package persist

// WithBoot makes a store take id as the name of the machine's boot, so that
// a test can simulate a reboot between runs.
func WithBoot(id string) Option { return bootOption(id) }
