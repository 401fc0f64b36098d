module example.com/mylib

go 1.26.0

require (
	github.com/contend-lab/contend v0.0.0
	golang.org/x/sync v0.25.0
)

require (
	github.com/HdrHistogram/hdrhistogram-go v1.2.0 // indirect
	github.com/anishathalye/porcupine v1.3.1 // indirect
	github.com/stretchr/testify v1.12.1 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/contend-lab/contend => ../..
