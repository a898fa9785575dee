module github.com/idpsync/idpsync

go 1.26.8

require github.com/svix/svix-webhooks v1.99.1

require (
	github.com/google/uuid v1.6.0 // indirect
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/time v0.16.0 // indirect
)
