package addon

// What the external tests (package addon_test) need of the unexported.

// LogSkip is logSkip: how long a log-job enqueue is remembered.
const LogSkip = logSkip

// LogMemoCap is logMemoCap: the most add-ons the log memo holds.
const LogMemoCap = logMemoCap

// LogMemoSize is how many add-ons the keeper remembers a log-job enqueue
// for.
func LogMemoSize(k *Keeper) int { return k.logJobs.size() }
