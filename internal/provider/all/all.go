// Package all registers every provider idpsync ships with. A program that reads configurations
// imports it for its side effect; adding a provider is one line here.
package all

import (
	// The providers, each registering itself with internal/provider.
	_ "github.com/idpsync/idpsync/internal/provider/authpi"
	_ "github.com/idpsync/idpsync/internal/provider/clerk"
	_ "github.com/idpsync/idpsync/internal/provider/zeroid"
	_ "github.com/idpsync/idpsync/internal/provider/zitadel"
)
