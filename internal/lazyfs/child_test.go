package lazyfs

const childEnv = "LAZYFS_TEST_CHILD_DIR"

func runChild(dir string) {}
