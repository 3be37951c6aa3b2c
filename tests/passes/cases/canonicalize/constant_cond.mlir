// RUN: canonicalize dce
// A cond on a constant predicate is replaced by its taken branch's ops.
func @main(%x: tensor<f64>) {
  %t = constant {value = dense<true> : tensor<i1>} : () -> tensor<i1>
  %f = less %x, %x : (tensor<f64>, tensor<f64>) -> tensor<i1>
  %r = cond %t : (tensor<i1>) -> tensor<f64> {
    %y = exp %x : (tensor<f64>) -> tensor<f64>
    yield %y : (tensor<f64>)
  } else {
    %z = tanh %x : (tensor<f64>) -> tensor<f64>
    yield %z : (tensor<f64>)
  }
  %s = cond %f : (tensor<i1>) -> tensor<f64> {
    yield %x : (tensor<f64>)
  } else {
    yield %r : (tensor<f64>)
  }
  return %s : (tensor<f64>)
}
// The first cond goes; the second, on a predicate only known at run time, stays.
// CHECK:      func @main(%arg0: tensor<f64>) {
// CHECK-NEXT:   [[F:%[0-9]+]] = less %arg0, %arg0
// CHECK-NEXT:   [[Y:%[0-9]+]] = exp %arg0
// CHECK-NEXT:   {{%[0-9]+}} = cond [[F]]
// CHECK-NEXT:     yield %arg0
// CHECK-NEXT:   } else {
// CHECK-NEXT:     yield [[Y]]
// CHECK-NOT:  tanh
