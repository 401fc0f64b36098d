//go:build !race

package pershard

const raceEnabled = false
