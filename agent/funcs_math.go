package agent

import (
	"fmt"
	"reflect"
)

// Math as consul-template v0.41.1 does it: the second argument is the left operand (`subtract
// 1 5` is 4, `divide 2 10` is 5, so `{{ 10 | divide 2 }}` reads naturally). Signed, unsigned
// and float arguments mix; the result is int64 when an int64 is involved without a float,
// uint64 for two unsigned, float64 as soon as a float is; strings (json.Number too) are
// refused. Integer division or modulo by zero fails the render.

type numKind int

const (
	numBad numKind = iota
	numInt
	numUint
	numFloat
)

func kindOf(v reflect.Value) numKind {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return numInt
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return numUint
	case reflect.Float32, reflect.Float64:
		return numFloat
	}
	return numBad
}

// asFloat converts a number for a mixed float operation.
func asFloat(v reflect.Value, k numKind) float64 {
	switch k {
	case numInt:
		return float64(v.Int())
	case numUint:
		return float64(v.Uint())
	}
	return v.Float()
}

// asInt converts an integer for a mixed signed operation.
func asInt(v reflect.Value, k numKind) int64 {
	if k == numUint {
		return int64(v.Uint())
	}
	return v.Int()
}

// arith applies op to a and b (a is the template's second argument) under the type rules.
func arith(name string, b, a any, ints func(x, y int64) int64, uints func(x, y uint64) uint64, floats func(x, y float64) float64) (any, error) {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	ak, bk := kindOf(av), kindOf(bv)
	if ak == numBad || (floats == nil && ak == numFloat) {
		return nil, fmt.Errorf("%s: unknown type for %q (%T)", name, av, a)
	}
	if bk == numBad || (floats == nil && bk == numFloat) {
		return nil, fmt.Errorf("%s: unknown type for %q (%T)", name, bv, b)
	}
	switch {
	case ak == numFloat || bk == numFloat:
		return floats(asFloat(av, ak), asFloat(bv, bk)), nil
	case ak == numUint && bk == numUint:
		return uints(av.Uint(), bv.Uint()), nil
	default:
		return ints(asInt(av, ak), asInt(bv, bk)), nil
	}
}

func add(b, a any) (any, error) {
	return arith("add", b, a, func(x, y int64) int64 { return x + y }, func(x, y uint64) uint64 { return x + y }, func(x, y float64) float64 { return x + y })
}

func subtract(b, a any) (any, error) {
	return arith("subtract", b, a, func(x, y int64) int64 { return x - y }, func(x, y uint64) uint64 { return x - y }, func(x, y float64) float64 { return x - y })
}

func multiply(b, a any) (any, error) {
	return arith("multiply", b, a, func(x, y int64) int64 { return x * y }, func(x, y uint64) uint64 { return x * y }, func(x, y float64) float64 { return x * y })
}

func divide(b, a any) (any, error) {
	return arith("divide", b, a, divInt, divUint, func(x, y float64) float64 { return x / y })
}

// modulo has no float form: a float argument is refused.
func modulo(b, a any) (any, error) {
	return arith("modulo", b, a, modInt, modUint, nil)
}

// Division by zero is an error in the template, where consul-template's runtime panic is turned
// into one by text/template.
func divInt(x, y int64) int64 {
	if y == 0 {
		panic("runtime error: integer divide by zero")
	}
	return x / y
}

func divUint(x, y uint64) uint64 {
	if y == 0 {
		panic("runtime error: integer divide by zero")
	}
	return x / y
}

func modInt(x, y int64) int64 {
	if y == 0 {
		panic("runtime error: integer divide by zero")
	}
	return x % y
}

func modUint(x, y uint64) uint64 {
	if y == 0 {
		panic("runtime error: integer divide by zero")
	}
	return x % y
}

// minimum and maximum return the chosen argument converted to int64, uint64 or float64 by its
// own kind (so `minimum 2 1.5` is 1.5 and `minimum 1 2.5` is int64 1), comparing as
// consul-template does (signed against unsigned as int64, anything against a float as float64).
func minimum(b, a any) (any, error) { return pick("minimum", b, a, true) }
func maximum(b, a any) (any, error) { return pick("maximum", b, a, false) }

func pick(name string, b, a any, min bool) (any, error) {
	av, bv := reflect.ValueOf(a), reflect.ValueOf(b)
	ak, bk := kindOf(av), kindOf(bv)
	if ak == numBad {
		return nil, fmt.Errorf("%s: unknown type for %q (%T)", name, av, a)
	}
	if bk == numBad {
		return nil, fmt.Errorf("%s: unknown type for %q (%T)", name, bv, b)
	}
	var aFirst bool
	switch {
	case ak == numFloat || bk == numFloat:
		x, y := asFloat(av, ak), asFloat(bv, bk)
		aFirst = (min && x < y) || (!min && x > y)
	case ak == numUint && bk == numUint:
		x, y := av.Uint(), bv.Uint()
		aFirst = (min && x < y) || (!min && x > y)
	default:
		x, y := asInt(av, ak), asInt(bv, bk)
		aFirst = (min && x < y) || (!min && x > y)
	}
	if aFirst {
		return own(av, ak), nil
	}
	return own(bv, bk), nil
}

func own(v reflect.Value, k numKind) any {
	switch k {
	case numInt:
		return v.Int()
	case numUint:
		return v.Uint()
	}
	return v.Float()
}
