package redislab

import (
	"testing"

	"github.com/contend-lab/contend/internal/redistest"
)

func TestMain(m *testing.M) { redistest.Main(m) }
