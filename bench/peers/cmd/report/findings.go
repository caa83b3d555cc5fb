package main

// profileFindings is what CPU profiles of the scenarios showed about the
// bars that were missed when this was last written; the report prints it
// when any bar is missed.
const profileFindings = `(no profile findings recorded yet)`
