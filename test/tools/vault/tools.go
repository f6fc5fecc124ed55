//go:build tools

// Package tools keeps github.com/hashicorp/vault in this wrapper module's requirements.
package tools

import _ "github.com/hashicorp/vault"
