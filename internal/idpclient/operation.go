package idpclient

import "context"

type operationKey struct{}

// WithOperation returns ctx naming the management-API calls made with it, e.g. "get_user" or
// "revoke_session": the jobs say what they are doing, and the traces of the HTTP requests are
// named after it (a name of idpsync's vocabulary, never an id: the request's URL says which
// entity). A token fetched on the way is named "fetch_token".
func WithOperation(ctx context.Context, name string) context.Context {
	return context.WithValue(ctx, operationKey{}, name)
}

// Operation is the name WithOperation gave ctx's calls, or "".
func Operation(ctx context.Context) string {
	name, _ := ctx.Value(operationKey{}).(string)
	return name
}

// OperationFetchToken names the calls that fetch an access token.
const OperationFetchToken = "fetch_token"
